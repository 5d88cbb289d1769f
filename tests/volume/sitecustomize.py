"""Give folders the volume's rules in every Python process the tests start (see volume_rules)."""

import os

if os.environ.get("PENGUINS_TEST_VOLUME"):
    import volume_rules

    volume_rules.install(os.environ["PENGUINS_TEST_VOLUME"])
