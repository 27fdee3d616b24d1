"""Members written by helper A and their single-bug mutants (exact text substitutions)."""

MEMBERS = {
    "a_eager3": "Eager GradientTape loop on model.optimizer, 3 ReLU hidden layers (512, 384, 256) mirrored, "
                "Flatten inside the encoder Sequential, tf.one_hot, float total.",
    "a_tfstep_tanh": "Module-level @tf.function train step (model, optimizer, images, one-hot labels), one tanh "
                     "hidden layer of 1024, tf.reshape in call(), NumPy-loop one_hot, model.optimizer.",
    "a_newadam": "Two hidden layers of 256 with separate LeakyReLU(0.2) layers, new hard-coded Adam(1e-3) made "
                 "in every train_vae call, prints every batch loss, returns sum(list of loss tensors).",
    "a_elu4": "Four ELU hidden layers (1024, 512, 256, 128), eager loop on model.optimizer, Adam(1e-3) set as "
              "self.optimizer in __init__, np.eye one-hot, returns a NumPy float32 total.",
}

MUTANTS = {
    "a_eager3-pixel-mean-bce": dict(
        base="a_eager3", file="vae.py",
        old="    return tf.reduce_sum(per_pixel)\n",
        new="    return tf.reduce_sum(tf.reduce_mean(per_pixel, axis=[1, 2, 3]))\n",
        bug="reconstruction term averages the BCE over the 784 pixels of each image instead of summing it",
        checks=("loss_function", "vae_training"),
    ),
    "a_tfstep_tanh-no-kl": dict(
        base="a_tfstep_tanh", file="vae.py",
        old="    loss = (reconstruction + kl_divergence) / batch_size\n",
        new="    loss = reconstruction / batch_size\n",
        bug="KL term left out of the loss (reconstruction only)",
        checks=("loss_function", "vae_training"),
    ),
    "a_newadam-cvae-decoder-drops-label": dict(
        base="a_newadam", file="vae.py",
        old="        # decoder input is [z, one-hot c]\n        self.decoder = make_decoder(input_size)\n",
        new="        # decoder input is [z, one-hot c]\n"
            "        self.decoder = keras.Sequential([keras.layers.Lambda(lambda zc: zc[:, :latent_size]),\n"
            "                                         make_decoder(input_size)])\n",
        bug="CVAE decoder slices the one-hot label off its input and decodes from z alone",
        checks=("cvae_forward", "cvae_generation"),
    ),
    "a_elu4-eps-drawn-at-import": dict(
        base="a_elu4", file="vae.py",
        old='def reparametrize(mu, logvar):\n'
            '    """z = mu + sigma * eps with sigma = exp(logvar / 2) and eps ~ N(0, I)."""\n'
            '    eps = tf.random.normal(shape=tf.shape(mu))\n',
        new='EPS = tf.random.normal(shape=(60000, 64))\n\n\n'
            'def reparametrize(mu, logvar):\n'
            '    """z = mu + sigma * eps with sigma = exp(logvar / 2) and eps ~ N(0, I)."""\n'
            '    eps = EPS[: tf.shape(mu)[0], : tf.shape(mu)[1]]\n',
        bug="noise eps is one module-level tensor drawn at import and sliced, so every call reuses the same noise",
        checks=("reparametrize",),
    ),
}
