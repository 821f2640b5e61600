"""The HTTP service over :mod:`allocator`: jobs, storage, access control and the proposal loop.

Start it with ``allocator serve`` (see :mod:`api.cli`); the application factory is
:func:`api.main.create_app`. The service adds no placement logic of its own: problems are
validated by :func:`allocator.build_problem`, solves run :func:`allocator.solve` in worker
processes (:mod:`api.worker`), and every plan is re-checked by :func:`allocator.verify_plan`.
"""
