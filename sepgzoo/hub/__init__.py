"""Model files, the model zoo and the factory that builds registered models or zoo entries."""
