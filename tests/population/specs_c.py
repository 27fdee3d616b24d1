"""Population members c_* and their single-bug mutants."""

MEMBERS = {
    "c_bottleneck": "Eager loop, encoder 512-256, decoder opens with a 15-unit linear Dense bottleneck then 256-512 ReLU; "
                    "fresh Adam(args.learning_rate) per train_vae call; tf.one_hot.",
    "c_flatten_call": "tf.reshape flatten in call(), 2 hidden layers of 768 ReLU, Sequential decoder ending in Dense(784, sigmoid) "
                      "+ Reshape; @tf.function step cached per id(model); model.optimizer; NumPy one-hot.",
    "c_functional": "Functional keras.Model encoder/decoder built in __init__, 3 hidden layers of 256 ReLU; eager enumerate loop, "
                    "model.optimizer, tf.one_hot on int32 labels, total accumulated with tf.add.",
    "c_subclass_layers": "Custom keras.layers.Layer Encoder/Decoder (500-300 / 300-500 ReLU); plain eager loop, "
                         "getattr(model, 'optimizer'), np.eye one-hot, returns float(total).",
}

MUTANTS = {
    "c_bottleneck-std-exp-logvar": dict(
        base="c_bottleneck", file="vae.py",
        old="    sigma = tf.exp(0.5 * logvar)\n",
        new="    sigma = tf.exp(logvar)\n",
        bug="reparametrize uses exp(logvar) as the standard deviation",
        checks=("reparametrize", "reparametrize_gradient")),
    "c_bottleneck-decoder-only-grads": dict(
        base="c_bottleneck", file="assignment.py",
        old="        grads = tape.gradient(loss, model.trainable_variables)\n"
            "        optimizer.apply_gradients(zip(grads, model.trainable_variables))\n",
        new="        grads = tape.gradient(loss, model.decoder.trainable_variables)\n"
            "        optimizer.apply_gradients(zip(grads, model.decoder.trainable_variables))\n",
        bug="train_vae takes gradients only with respect to the decoder's variables (encoder never trained)",
        checks=("train_vae", "vae_training")),
    "c_flatten_call-returns-mean": dict(
        base="c_flatten_call", file="assignment.py",
        old="    return total_loss\n",
        new="    return total_loss / len(train_loader)\n",
        bug="train_vae returns the mean over batches instead of the sum",
        checks=("train_vae",)),
    "c_functional-one-hot-off-by-one": dict(
        base="c_functional", file="assignment.py",
        old="tf.one_hot(tf.cast(labels, tf.int32), class_size)",
        new="tf.one_hot(tf.cast(labels, tf.int32) - 1, class_size)",
        bug="one_hot is off by one (encodes label - 1; label 0 becomes an all-zero row)",
        checks=("one_hot",)),
    "c_functional-cvae-ignores-label": dict(
        base="c_functional", file="vae.py",
        old="        self.encoder = build_encoder(input_size + num_classes)\n"
            "        self.mu_layer = keras.layers.Dense(latent_size)\n"
            "        self.logvar_layer = keras.layers.Dense(latent_size)\n"
            "        self.decoder = build_decoder(latent_size + num_classes, input_size)\n"
            "\n"
            "    def call(self, x, c):\n"
            "        flat = tf.reshape(x, (tf.shape(x)[0], self.input_size))\n"
            "        hidden = self.encoder(tf.concat([flat, c], axis=-1))\n"
            "        mu = self.mu_layer(hidden)\n"
            "        logvar = self.logvar_layer(hidden)\n"
            "        z = reparametrize(mu, logvar)\n"
            "        x_hat = self.decoder(tf.concat([z, c], axis=-1))\n",
        new="        self.encoder = build_encoder(input_size)\n"
            "        self.mu_layer = keras.layers.Dense(latent_size)\n"
            "        self.logvar_layer = keras.layers.Dense(latent_size)\n"
            "        self.decoder = build_decoder(latent_size, input_size)\n"
            "\n"
            "    def call(self, x, c):\n"
            "        flat = tf.reshape(x, (tf.shape(x)[0], self.input_size))\n"
            "        hidden = self.encoder(flat)\n"
            "        mu = self.mu_layer(hidden)\n"
            "        logvar = self.logvar_layer(hidden)\n"
            "        z = reparametrize(mu, logvar)\n"
            "        x_hat = self.decoder(z)\n",
        bug="CVAE encoder and decoder both ignore the label (c never used; decoder built for Z inputs only)",
        checks=("cvae_forward", "cvae_generation")),
    "c_subclass_layers-np-exp-no-grad": dict(
        base="c_subclass_layers", file="vae.py",
        old="    sigma = tf.math.exp(logvar / 2.0)\n",
        new="    sigma = np.exp(logvar.numpy() / 2.0)\n",
        bug="reparametrize computes sigma with np.exp on a .numpy() copy of logvar (no gradient reaches logvar)",
        checks=("reparametrize_gradient",)),
}
