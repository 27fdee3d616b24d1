MEMBERS = {
    "b_keras2": "Keras 2 spellings (InputLayer(input_shape=...), Dense(input_dim=...), super(VAE, self)), 2x400 ReLU, eager loop with model.optimizer, tf.one_hot.",
    "b_numpyloss": "Eager-only: static shapes and x.numpy() in the loss, Keras BinaryCrossentropy(reduction='sum') rescaled by 784, 600-300-150 ReLU, float64 NumPy round trip of each batch, total returned as a tensor.",
    "b_tffunc_cached": "@tf.function train step defined inside train_vae (re-traced every call), 2x128 ReLU, shared decoder builder ending Dense(784, sigmoid) + Reshape, CVAE encoder on concat([flatten(x), c]).",
    "b_print_epoch": "Eager loop printing every 100 batches, loss as reduce_mean of per-image BCE and KL sums, 2x512 ReLU, model.optimizer, to_categorical one-hot.",
}

MUTANTS = {
    "b_keras2-kl-sign": dict(
        base="b_keras2", file="vae.py",
        old="kl_loss = -0.5 * tf.reduce_sum(",
        new="kl_loss = 0.5 * tf.reduce_sum(",
        bug="KL term has its sign flipped (the loss subtracts the KL divergence)",
        checks=("loss_function", "vae_training"),
    ),
    "b_keras2-no-step": dict(
        base="b_keras2", file="assignment.py",
        old="        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))\n",
        new="",
        bug="train_vae computes gradients but never calls apply_gradients, so the model never learns",
        checks=("train_vae", "vae_training", "cvae_generation"),
    ),
    "b_numpyloss-no-div-n": dict(
        base="b_numpyloss", file="vae.py",
        old="    return (recon + kl) / n\n",
        new="    return recon + kl\n",
        bug="loss_function returns the batch sum instead of dividing by the batch size N",
        checks=("loss_function",),
    ),
    "b_tffunc_cached-linear-decoder": dict(
        base="b_tffunc_cached", file="vae.py",
        old='layers.Dense(input_size, activation="sigmoid"),',
        new="layers.Dense(input_size),",
        bug="decoder's last layer is linear instead of sigmoid (VAE and CVAE share the builder), so x_hat leaves [0,1]",
        checks=("vae_forward", "cvae_forward", "vae_training"),
    ),
    "b_tffunc_cached-last-batch": dict(
        base="b_tffunc_cached", file="assignment.py",
        old="        total_loss += float(train_step(x, y))",
        new="        total_loss = float(train_step(x, y))",
        bug="train_vae overwrites the running total and returns only the last batch's loss",
        checks=("train_vae",),
    ),
    "b_print_epoch-kl-half": dict(
        base="b_print_epoch", file="vae.py",
        old="kl_per_image = tf.reduce_sum(-0.5 * (1 + logvar",
        new="kl_per_image = tf.reduce_sum(-(1 + logvar",
        bug="KL term is missing its factor 0.5 (KL counted twice)",
        checks=("loss_function",),
    ),
}
