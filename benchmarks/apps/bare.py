"""The hello-world route with no middleware at all."""

from benchmarks.apps._hello import make_app

app = make_app()
