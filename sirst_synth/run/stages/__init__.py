"""The stages of the method, one module each, all implementing :class:`.base.Stage`."""
