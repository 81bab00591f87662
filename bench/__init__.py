"""Performance benchmarks of issue #9 (not run by the tests): `make bench` runs them all."""
