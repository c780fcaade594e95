"""The verifier as an HTTP service (`make reward-server`), and the client that scores through one or more
of them (VERIFIER_URL). doc/scaling.md says how to run it and what it speaks."""
