"""Slips a TA would forgive with a few points: each costs the points of the check it breaks, no more."""

MEMBERS = {}
MUTANTS = {
    "c_flatten_call-flat-decoder": dict(
        base="c_flatten_call", file="vae.py",
        old="            layers.Reshape((1, 28, 28)),\n", new="", count=2,
        bug="both decoders return flat (N, 784) images; call() reshapes them, so model(x) is still right",
        checks=("vae_forward", "cvae_forward"),
    ),
}
