"""The counting layer: the C++ kernel's Python face and the accumulators built on it.

``_core`` is the compiled kernel (src/, csrc/); ``kernel`` is the one call
that counts label pairs; ``confusion`` holds ``confusion_matrix`` and
``ConfusionMatrix``; ``inputs`` and ``threads`` check what users pass;
``reference`` is the pure-NumPy definition the kernel is tested against.
"""
