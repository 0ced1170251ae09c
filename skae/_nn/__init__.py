"""The networks and their training, knowing nothing of scikit-learn.

The network kinds, their start at PCA's solution, the training loop with
its steps and optimiser, mini-batches, and the thread rule.
"""
