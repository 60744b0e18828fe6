"""The chaos suite: seeded random mixes of misbehaving tasks over every backend."""
