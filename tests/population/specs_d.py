"""Population members d_*: the slow and the large end, written from the student release alone."""

MEMBERS = {
    "d_conv": "Convolutional VAE and CVAE: Permute to channels-last, Conv2D 32/64 stride 2 ReLU, Flatten, Dense mu/logvar "
              "(CVAE: label joined after the convolutions); decoder Dense(7*7*64) straight to Conv2DTranspose 32/1 "
              "(no hidden Dense); Keras's default initializers; compiled_step loop with progress_bar; tf.one_hot.",
    "d_fit": "Dense 400-400 ReLU; train_step overridden in the models, train_vae compiles with model.optimizer (default "
             "jit_compile) and runs model.fit for one epoch, summing each batch's loss from a callback; tf.one_hot "
             "mapped into the dataset for the CVAE.",
    "d_tanh1": "One hidden layer of 512 tanh in encoder and decoder; plain eager loop with progress_bar, "
               "model.optimizer, float(loss) checked with math.isfinite; tf.one_hot inside the loop.",
    "d_eager500": "Eager for loop over the batches, no tf.function: 3 x 500 ReLU (He initialization) in encoder and "
                  "decoder; NumPy one-hot of labels.numpy() with float32 casts; prints every 100 batches; "
                  "model.optimizer.",
    "d_keras_ops": "keras.Sequential encoder and decoder (2 x 256 ReLU) built in __init__; keras.ops in reparametrize, "
                   "loss_function and CVAE.call; one module-level @tf.function step taking the model and optimizer, "
                   "with the model and optimizer built eagerly first; tf.one_hot.",
}

MUTANTS = {}
