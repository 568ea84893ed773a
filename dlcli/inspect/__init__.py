"""What is done with a config before training: ``dlcli shapes``, ``time`` and ``gradcheck``."""
