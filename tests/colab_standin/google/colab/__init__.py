"""A stand-in for Colab's ``google.colab`` package, for tests only: the suite's simulated Colab kernel
imports it at start, as Colab's kernel imports the real one, so ``"google.colab" in sys.modules``.
Only what the notebooks use is here: :mod:`google.colab.drive`."""
