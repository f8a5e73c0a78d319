"""Released weights: manifest.json, its generated README.md and small weights files; installed as `sepgzoo.weights`."""
