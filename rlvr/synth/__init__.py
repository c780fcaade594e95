"""Verified synthetic data from a teacher model (`make synth-data`, doc/data.md): rejection-sampled
solutions to existing problems, or new problems that the verifier validates like the bundled set."""
