"""omnirl.model: the OmniRL sequence model (backbones, mixers and their core recurrent ops)."""
