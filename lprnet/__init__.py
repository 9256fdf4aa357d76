"""LPRNet licence-plate recognition: the pieces every stage script shares."""
