"""The reference models and losses against closed forms and the contract's shapes."""

import numpy as np
import pytest
import tensorflow as tf

from vae import CVAE, VAE, bce_function, loss_function, reparametrize

N, Z, C = 6, 4, 10


def random_batch(seed=0, n=N, z=Z):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 1, 28, 28)).astype(np.float32)
    x_hat = rng.uniform(0.01, 0.99, size=(n, 1, 28, 28)).astype(np.float32)
    mu = rng.normal(size=(n, z)).astype(np.float32)
    logvar = rng.normal(scale=0.5, size=(n, z)).astype(np.float32)
    return x_hat, x, mu, logvar


def numpy_negative_elbo(x_hat, x, mu, logvar):
    bce = -np.sum(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat))
    kl = -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar))
    return (bce + kl) / x.shape[0]


def test_bce_sums_over_every_pixel_of_every_image():
    x_hat, x, _, _ = random_batch()
    expected = -np.sum(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat))
    np.testing.assert_allclose(float(bce_function(x_hat, x)), expected, rtol=1e-5)


def test_bce_is_finite_for_saturated_probabilities():
    x = np.array([0.0, 1.0, 0.0, 1.0], np.float32).reshape(1, 1, 2, 2)
    x_hat = np.array([1.0, 0.0, 0.0, 1.0], np.float32).reshape(1, 1, 2, 2)
    value = float(bce_function(x_hat, x))
    assert np.isfinite(value)
    # Two pixels are certain and wrong: each costs about -log(1e-7), 16 nats
    # (float32 rounds 1 - 1e-7, hence the tolerance).
    assert value == pytest.approx(2 * -np.log(1e-7), rel=1e-2)


def test_loss_matches_hand_computation_on_a_tiny_batch():
    x_hat = np.full((2, 1, 28, 28), 0.5, np.float32)
    x = np.zeros((2, 1, 28, 28), np.float32)
    mu = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    logvar = np.zeros((2, 2), np.float32)
    # BCE: 784 pixels * log(2) per image; KL: 0.5 * mu^2 summed, 0.5 and 2.0.
    expected = (2 * 784 * np.log(2.0) + 0.5 + 2.0) / 2
    assert float(loss_function(x_hat, x, mu, logvar)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_matches_numpy_on_random_batches(seed):
    x_hat, x, mu, logvar = random_batch(seed)
    expected = numpy_negative_elbo(x_hat, x, mu, logvar)
    assert float(loss_function(x_hat, x, mu, logvar)) == pytest.approx(expected, rel=1e-5)


def test_kl_is_zero_at_the_prior():
    x_hat, x, _, _ = random_batch()
    zeros = np.zeros((N, Z), np.float32)
    kl = float(loss_function(x_hat, x, zeros, zeros)) - float(bce_function(x_hat, x)) / N
    assert kl == pytest.approx(0.0, abs=1e-3)


def test_loss_is_a_mean_over_the_batch():
    x_hat, x, mu, logvar = random_batch(n=4)
    doubled = [np.concatenate([a, a]) for a in (x_hat, x, mu, logvar)]
    assert float(loss_function(*doubled)) == pytest.approx(
        float(loss_function(x_hat, x, mu, logvar)), rel=1e-5
    )


def test_reparametrize_moments_over_many_draws():
    mu = tf.fill((200_000, 2), 1.5)
    logvar = tf.fill((200_000, 2), np.log(4.0).astype(np.float32))
    z = reparametrize(mu, logvar).numpy()
    assert z.shape == (200_000, 2)
    assert z.mean() == pytest.approx(1.5, abs=0.02)
    assert z.var() == pytest.approx(4.0, rel=0.02)


def test_reparametrize_draws_fresh_noise_at_every_call():
    mu = tf.zeros((8, Z))
    logvar = tf.zeros((8, Z))
    assert not np.allclose(reparametrize(mu, logvar), reparametrize(mu, logvar))


def test_reparametrize_gradients_reach_mu_and_logvar():
    mu = tf.Variable(tf.zeros((1000, 3)))
    logvar = tf.Variable(tf.fill((1000, 3), 0.4))
    with tf.GradientTape() as tape:
        z = reparametrize(mu, logvar)
    grad_mu, grad_logvar = tape.gradient(z, [mu, logvar])
    np.testing.assert_allclose(grad_mu.numpy(), 1.0)
    # dz/dlogvar = 0.5 * exp(logvar / 2) * eps = 0.5 * (z - mu).
    np.testing.assert_allclose(grad_logvar.numpy(), 0.5 * z.numpy(), rtol=1e-4, atol=1e-6)


def test_vae_forward_shapes_and_range():
    model = VAE(784, latent_size=Z)
    x = np.random.default_rng(0).uniform(size=(N, 1, 28, 28)).astype(np.float32)
    x_hat, mu, logvar = model(x)
    assert x_hat.shape == (N, 1, 28, 28)
    assert mu.shape == logvar.shape == (N, Z)
    assert 0.0 <= float(tf.reduce_min(x_hat)) and float(tf.reduce_max(x_hat)) <= 1.0
    assert model.decoder(tf.zeros((3, Z))).shape == (3, 1, 28, 28)
    for name in ("encoder", "mu_layer", "logvar_layer", "decoder"):
        assert hasattr(model, name)


def test_log_variance_starts_at_zero_so_exp_cannot_overflow():
    model = VAE(784, latent_size=Z)
    x = np.ones((N, 1, 28, 28), np.float32)
    _, _, logvar = model(x)
    np.testing.assert_allclose(logvar.numpy(), 0.0)


def test_cvae_forward_shapes_and_decoder_uses_the_label():
    model = CVAE(784, num_classes=C, latent_size=Z)
    x = np.random.default_rng(0).uniform(size=(N, 1, 28, 28)).astype(np.float32)
    c = tf.one_hot(np.arange(N) % C, C)
    x_hat, mu, logvar = model(x, c)
    assert x_hat.shape == (N, 1, 28, 28)
    assert mu.shape == logvar.shape == (N, Z)
    z = tf.zeros((2, Z))
    two_labels = model.decoder(tf.concat([z, tf.one_hot([3, 7], C)], axis=-1)).numpy()
    assert two_labels.shape == (2, 1, 28, 28)
    assert np.abs(two_labels[0] - two_labels[1]).max() > 1e-4
    assert two_labels.min() >= 0.0 and two_labels.max() <= 1.0
