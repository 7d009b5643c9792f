import pytest


# The conftest's people, by the names these conversations read best with.
@pytest.fixture
def alice(user):
    return user


@pytest.fixture
def bob(other_user):
    return other_user


@pytest.fixture
def carol(stranger):
    return stranger
