"""The ``penguins`` command and its local tooling: run the bundle's job, benchmark, submit.

What a workspace imports lives beside the notebooks, in ``penguin_classifier``; nothing here is
shipped to a cluster.
"""
