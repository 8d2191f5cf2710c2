"""Seeing what happens: the lesson's worked examples, the figures drawn after a run, their plots."""
