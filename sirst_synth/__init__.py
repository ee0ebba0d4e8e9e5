"""sirst-synth: massive negatives synthesis (SIRST-5K) for infrared small target detection."""

__version__ = "0.1.0"
