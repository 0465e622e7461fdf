"""Host side of the oom_ext VM test suite: images, QEMU boots, scenarios."""
