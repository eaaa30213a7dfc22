"""`python -m stylegen.cuda_ops [--verbose] [--no-cuda | --require-cuda]`: the native ops doctor (see doctor.py)."""

from stylegen.cuda_ops.doctor import main

raise SystemExit(main())
