import pytest

from tests.push.fakes import FakeApns, FakeFcm


@pytest.fixture
def fake_fcm(tmp_path, settings):
    with FakeFcm(tmp_path) as fake:
        settings.FCM_CREDENTIALS_FILE = str(fake.credentials_file)
        settings.FCM_ENDPOINT = fake.url
        yield fake


@pytest.fixture
def fake_apns(tmp_path, settings):
    with FakeApns(tmp_path) as fake:
        settings.APNS_KEY_FILE = str(fake.key_file)
        settings.APNS_KEY_ID = fake.key_id
        settings.APNS_TEAM_ID = fake.team_id
        settings.APNS_TOPIC = fake.topic
        settings.APNS_ENDPOINT = fake.url
        settings.APNS_CA_FILE = str(fake.ca_file)
        yield fake
