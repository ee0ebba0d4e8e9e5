"""Allow ``python -m sirst_synth``."""
from sirst_synth.cli import main

main()
