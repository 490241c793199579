"""Built-in tool packs: ``arith`` (training) and the out-of-domain ``units``, ``calendar``, ``store``.

Modules are imported lazily through ``components.tools.registry`` so that
loading one pack does not import the others.
"""
