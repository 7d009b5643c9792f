from rest_framework.routers import SimpleRouter


class ApiRouter(SimpleRouter):
    """Contract paths have no trailing slash; one is tolerated."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"
