"""imserver settings: everything comes from the environment (see docs/configuration.md).

With no environment at all the server runs on an embedded default (SQLite, in-process realtime
bus, local cache, loopback only) so that `make run` works on a fresh machine. Production mode is
explicit (`IMSERVER_ENV=production`) and refuses to start without a real SECRET_KEY,
ALLOWED_HOSTS, a database, Redis and SMTP, or with DEBUG on.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# Local state of the embedded default (SQLite file, generated secret, uploaded media); git-ignored.
VAR_DIR = Path(os.environ.get("IMSERVER_VAR_DIR", BASE_DIR / "var"))


def env(name, default=None):
    value = os.environ.get(name, "").strip()
    return value if value else default


def env_bool(name, default=False):
    value = env(name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_int(name, default):
    value = env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_list(name, default=()):
    value = env(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


PRODUCTION = env("IMSERVER_ENV", "development") == "production"
if env("IMSERVER_ENV", "development") not in {"development", "production"}:
    raise ImproperlyConfigured("IMSERVER_ENV must be 'development' or 'production'")
# DEBUG only adds Django's debug pages in the admin; everything else answers errors with the envelope.
DEBUG = env_bool("DEBUG", False)
if PRODUCTION and DEBUG:
    # Debug pages show settings, source and local variables to anyone who can trigger an error.
    raise ImproperlyConfigured("DEBUG must be off when IMSERVER_ENV=production")


def _secret_key():
    key = env("SECRET_KEY")
    if key:
        if PRODUCTION and (len(key) < 50 or key.startswith("django-insecure")):
            raise ImproperlyConfigured("SECRET_KEY must be a random string of at least 50 characters")
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY is required when IMSERVER_ENV=production")
    # Development: generate one secret on first run and keep it, so tokens survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        # Written aside, then linked into place (atomic, and refused if another process got there
        # first): processes starting together never read a half-written key.
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        draft = VAR_DIR / f"secret_key.{os.getpid()}"
        draft.write_text(secrets.token_urlsafe(64))
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
if PRODUCTION and (not env("ALLOWED_HOSTS") or "*" in ALLOWED_HOSTS):
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the server's host names in production (never '*')")

# Browser origins allowed to open the WebSocket besides ALLOWED_HOSTS (native apps send none).
WEBSOCKET_ALLOWED_ORIGINS = env_list("WEBSOCKET_ALLOWED_ORIGINS")
# Addresses (or CIDR networks) of reverse proxies whose X-Forwarded-For is believed.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
# Absolute base URL for links in responses and events (e.g. https://chat.example.com); when unset,
# the request's own host is used.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", "").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "moderation.admin_config.AdminSiteConfig",  # django.contrib.admin with our site (moderation.admin_site)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "social_django",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "imserver",
    "accounts",
    "contacts",
    "chat",
    "groups",
    "media",
    "calls",
    "realtime",
    "presence",
    "moderation",
    "privacy",
    "push",
]

MIDDLEWARE = [
    "imserver.logs.RequestIdMiddleware",
    "imserver.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "imserver.middleware.ApiErrorMiddleware",
    "imserver.idempotency.IdempotencyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): the admin's second factor
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "imserver.urls"
ASGI_APPLICATION = "imserver.asgi.application"
# Threads that run the REST requests of an ASGI server process (imserver.asgi_http); each holds a
# database connection while it serves one, so keep it below DATABASE_POOL_MAX.
ASGI_HTTP_THREADS = env_int("ASGI_HTTP_THREADS", 8)
WSGI_APPLICATION = "imserver.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Under ASGI every request runs in a thread of its own, so persistent per-thread
        # connections are never reused: a process-wide pool is what keeps connects off the hot path.
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("DATABASE_POOL_MIN", 2),
            "max_size": env_int("DATABASE_POOL_MAX", 20),
            "timeout": env_int("DATABASE_POOL_TIMEOUT", 10),
        }
        # With a pool, this makes it check each connection as it is handed out. After a database
        # restart, failover or network cut every connection idle in the pool is broken; without
        # the check each of them fails one request (503) after the database is back. The check
        # makes a round trip only for a connection whose socket has something to read
        # (imserver.postgresql, Django's backend with that check).
        DATABASES["default"]["ENGINE"] = "imserver.postgresql"
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("DATABASE_HEALTH_CHECKS", True)
        # Parameters bound by the server, and each connection's statements prepared from their
        # fifth run: the hot path's statements are parsed and planned once per connection, not on
        # every request (a third of PostgreSQL's CPU per send, docs/performance.md). Off for a
        # transaction-pooling PgBouncer older than 1.21, which cannot carry prepared statements.
        if env_bool("DATABASE_PREPARED_STATEMENTS", True):
            DATABASES["default"]["OPTIONS"].update(server_side_binding=True, prepare_threshold=5)
elif PRODUCTION:
    raise ImproperlyConfigured("DATABASE_URL is required when IMSERVER_ENV=production")
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN: concurrent writers queue on the busy
                # timeout instead of failing with "database is locked" halfway through.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

# --- Redis: shared cache (rate limits), realtime bus and presence ----------------------------
REDIS_URL = env("REDIS_URL")
if PRODUCTION and not REDIS_URL:
    raise ImproperlyConfigured("REDIS_URL is required when IMSERVER_ENV=production")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", "imserver"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.AccessTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["imserver.api.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["imserver.api.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["imserver.ratelimit.ScopedRateThrottle"],
    "EXCEPTION_HANDLER": "imserver.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "imserver.schema.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "imserver API",
    "DESCRIPTION": "REST API of imserver, the instant-messaging backend. See CONTRACT.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": r"/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # 3.1: nullable nested objects are plain JSON Schema (oneOf with null), which validators and
    # code generators read the same way.
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "imserver.schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "PresenceStatusEnum": "accounts.models.Status",
        "MessageStatusEnum": ["sent", "delivered", "read", "removed"],
        "MessageTypeEnum": "chat.models.Message.Type",
        "SendableMessageTypeEnum": ["text", "image", "video", "audio", "file"],
        "ConversationTypeEnum": "chat.models.Conversation.Type",
        "ConversationFilterEnum": ["private", "group", "all"],
        "MemberRoleEnum": "chat.models.Membership.Role",
        "MediaTypeEnum": "media.models.Kind",
        "CallTypeEnum": "calls.models.Call.Type",
        "CallStatusEnum": "calls.models.Call.Status",
        "FinishedCallStatusEnum": ["ended", "rejected", "cancelled", "missed"],
        "ReportTargetTypeEnum": "moderation.models.TargetType",
        "ReportStatusEnum": "moderation.models.Report.Status",
        "LastSeenAudienceEnum": "contacts.models.Audience",
        "ReachEnum": "contacts.models.Reach",
        "NotificationPreviewEnum": "contacts.models.Preview",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

ACCESS_TOKEN_LIFETIME = timedelta(seconds=env_int("ACCESS_TOKEN_LIFETIME", 15 * 60))
REFRESH_TOKEN_LIFETIME = timedelta(seconds=env_int("REFRESH_TOKEN_LIFETIME", 30 * 24 * 3600))
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": ACCESS_TOKEN_LIFETIME,
    "REFRESH_TOKEN_LIFETIME": REFRESH_TOKEN_LIFETIME,
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_CLAIM": "user_id",
    "USER_ID_FIELD": "id",
}

# --- Accounts -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "accounts.oauth.GoogleBackend",
    "accounts.oauth.GithubBackend",
    "accounts.oauth.AppleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = env("GOOGLE_CLIENT_ID")
SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = env("GOOGLE_CLIENT_SECRET")
SOCIAL_AUTH_GITHUB_KEY = env("GITHUB_CLIENT_ID")
SOCIAL_AUTH_GITHUB_SECRET = env("GITHUB_CLIENT_SECRET")
SOCIAL_AUTH_GITHUB_SCOPE = ["read:user", "user:email"]
SOCIAL_AUTH_APPLE_ID_CLIENT = env("APPLE_CLIENT_ID")
SOCIAL_AUTH_APPLE_ID_TEAM = env("APPLE_TEAM_ID")
SOCIAL_AUTH_APPLE_ID_KEY = env("APPLE_KEY_ID")
SOCIAL_AUTH_APPLE_ID_SECRET = env("APPLE_PRIVATE_KEY", "").replace("\\n", "\n") or None
SOCIAL_AUTH_APPLE_ID_SCOPE = ["email", "name"]
SOCIAL_AUTH_USER_MODEL = AUTH_USER_MODEL
SOCIAL_AUTH_PIPELINE = (
    "social_core.pipeline.social_auth.social_details",
    "social_core.pipeline.social_auth.social_uid",
    "social_core.pipeline.social_auth.auth_allowed",
    "social_core.pipeline.social_auth.social_user",
    "accounts.oauth.associate_by_verified_email",
    "accounts.oauth.create_user",
    "social_core.pipeline.social_auth.associate_user",
    "social_core.pipeline.social_auth.load_extra_data",
)
SOCIAL_AUTH_RAISE_EXCEPTIONS = True
OAUTH_TIMEOUT = env_int("OAUTH_TIMEOUT", 10)
SOCIAL_AUTH_URLOPEN_TIMEOUT = OAUTH_TIMEOUT

PASSWORD_RESET_CODE_TTL = timedelta(minutes=env_int("PASSWORD_RESET_CODE_MINUTES", 30))
# Wrong reset codes counted over a code's lifetime: from one address (past it, that address gets
# 429), and from all addresses together (past it, only an address that asked for a live code and
# has not guessed wrong may still try). A wrong code voids nothing (docs/security.md).
PASSWORD_RESET_GUESSES_PER_ADDRESS = env_int("PASSWORD_RESET_GUESSES_PER_ADDRESS", 5)
PASSWORD_RESET_GUESSES_PER_EMAIL = env_int("PASSWORD_RESET_GUESSES_PER_EMAIL", 10)
# Live reset codes of one account asked for from other addresses than the newest request's: past
# it, a request from a new address is dropped (strangers cannot multiply the codes a guess may hit).
PASSWORD_RESET_MAX_LIVE_CODES = 5
# The code mailed at registration to confirm the email (contract 23), and its wrong guesses.
EMAIL_CONFIRM_CODE_TTL = timedelta(minutes=env_int("EMAIL_CONFIRM_CODE_MINUTES", 30))
EMAIL_CONFIRM_MAX_ATTEMPTS = 5
AVATAR_MAX_BYTES = env_int("AVATAR_MAX_BYTES", 5 * 1024 * 1024)
AVATAR_MAX_SIDE = 1024  # avatars are re-encoded no larger than this many pixels a side

# --- Background work ------------------------------------------------------------------------
# `manage.py run_worker` runs the daily maintenance (prune events, media, tokens, idempotency
# keys) at start and then every this many seconds.
MAINTENANCE_INTERVAL = env_int("MAINTENANCE_INTERVAL_SECONDS", 24 * 3600)

# --- Idempotent retries (contract 21) -------------------------------------------------------
# A key's stored answer is replayed for this long; `manage.py prune_idempotency_keys` (daily)
# deletes older keys.
IDEMPOTENCY_KEY_TTL = timedelta(hours=env_int("IDEMPOTENCY_KEY_HOURS", 24))
# A repeat arriving while the first request still runs gets 409 for this long; past it the first
# is taken for dead (nothing of it committed) and the repeat runs. Longer than any request lasts.
IDEMPOTENCY_LOCK_SECONDS = env_int("IDEMPOTENCY_LOCK_SECONDS", 300)

# --- Chat -----------------------------------------------------------------------------------
MESSAGE_MAX_LENGTH = 10_000  # characters of a text message (contract 5)
GROUP_MAX_MEMBERS = env_int("GROUP_MAX_MEMBERS", 500)
# How long after sending the sender may edit (contract 15) or recall a message.
MESSAGE_EDIT_WINDOW_SECONDS = env_int("MESSAGE_EDIT_WINDOW_SECONDS", 86400)
MESSAGE_RECALL_WINDOW_SECONDS = env_int("MESSAGE_RECALL_WINDOW_SECONDS", 120)

# Privacy settings a new account starts with (contract 16; docs/privacy.md). Existing accounts
# keep theirs when these change.
PRIVACY_DEFAULTS = {
    "last_seen": env("PRIVACY_DEFAULT_LAST_SEEN", "everyone"),
    "who_can_message": env("PRIVACY_DEFAULT_WHO_CAN_MESSAGE", "everyone"),
    "who_can_call": env("PRIVACY_DEFAULT_WHO_CAN_CALL", "everyone"),
    "who_can_add_to_groups": env("PRIVACY_DEFAULT_WHO_CAN_ADD_TO_GROUPS", "everyone"),
    "send_read_receipts": env_bool("PRIVACY_DEFAULT_SEND_READ_RECEIPTS", True),
    "send_typing": env_bool("PRIVACY_DEFAULT_SEND_TYPING", True),
    "notification_preview": env("PRIVACY_DEFAULT_NOTIFICATION_PREVIEW", "full"),
}
_PRIVACY_CHOICES = {
    "last_seen": {"everyone", "contacts", "nobody"},
    "who_can_message": {"everyone", "contacts"},
    "who_can_call": {"everyone", "contacts"},
    "who_can_add_to_groups": {"everyone", "contacts"},
    "notification_preview": {"full", "sender", "none"},
}
for _name, _choices in _PRIVACY_CHOICES.items():
    if PRIVACY_DEFAULTS[_name] not in _choices:
        raise ImproperlyConfigured(f"PRIVACY_DEFAULT_{_name.upper()} must be one of {', '.join(sorted(_choices))}")
# At most this many users one user may block (contract 16).
BLOCKS_MAX = 1000

# --- Realtime ---------------------------------------------------------------------------------
# How long the event log keeps events for clients to resume from (contract 7.1); prune_events
# deletes older ones, and a cursor older than that gets 410.
EVENT_RETENTION = timedelta(days=env_int("EVENT_RETENTION_DAYS", 7))
# Each process refreshes its sockets' presence every PRESENCE_HEARTBEAT seconds; a socket whose
# process stops doing so (a crash) is reaped after PRESENCE_TTL seconds.
PRESENCE_HEARTBEAT = env_int("PRESENCE_HEARTBEAT_SECONDS", 20)
PRESENCE_TTL = env_int("PRESENCE_TTL_SECONDS", 60)
# At most this many open WebSockets per user across all processes (contract 23); one more is
# closed with 4429. A crashed process's sockets stop counting after PRESENCE_TTL.
WS_MAX_PER_USER = env_int("WS_MAX_PER_USER", 20)
# A socket that stops reading (contract 23): under daphne, once its transport holds more than
# WS_MAX_BUFFERED_BYTES it gets a close with 4408 instead of more frames, and is aborted if it has
# not read up to that close within WS_SLOW_CLOSE_SECONDS (imserver.daphne_limits).
WS_MAX_BUFFERED_BYTES = env_int("WS_MAX_BUFFERED_BYTES", 4 * 1024 * 1024)
WS_SLOW_CLOSE_SECONDS = env_int("WS_SLOW_CLOSE_SECONDS", 10)
# Connections under daphne (contract 23, issue 19): one that sends nothing (or no request after its
# last) is closed after HTTP_IDLE_SECONDS (Twisted's default is 60), and the process keeps
# HTTP_DESCRIPTOR_RESERVE of its descriptors (`ulimit -n`) for its own files, database and Redis:
# at that point a new connection closes the longest-open one that has no request in progress
# (half-open, or idle between requests), or is itself closed at once (imserver.daphne_limits).
HTTP_IDLE_SECONDS = env_int("HTTP_IDLE_SECONDS", 20)
HTTP_DESCRIPTOR_RESERVE = env_int("HTTP_DESCRIPTOR_RESERVE", 64)

# --- Calls ----------------------------------------------------------------------------------
# A call nobody answers within this many seconds becomes "missed" (contract 9).
CALL_RING_TIMEOUT = env_int("CALL_RING_TIMEOUT_SECONDS", 45)
# ICE servers handed to clients (GET /v1/calls/ice-servers). TURN credentials follow the TURN
# REST API shared-secret scheme (coturn's use-auth-secret / static-auth-secret) and expire after
# TURN_CREDENTIAL_TTL seconds.
STUN_URLS = env_list("STUN_URLS")
TURN_URLS = env_list("TURN_URLS")
TURN_SECRET = env("TURN_SECRET")
TURN_CREDENTIAL_TTL = env_int("TURN_CREDENTIAL_TTL", 24 * 3600)
if TURN_URLS and not TURN_SECRET:
    raise ImproperlyConfigured("TURN_URLS needs TURN_SECRET (the TURN server's static-auth-secret)")

# --- Email ----------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "imserver <no-reply@localhost>")
EMAIL_HOST = env("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
    EMAIL_TIMEOUT = 10
elif PRODUCTION:
    # The console backend would write password-reset codes into the logs and reach nobody.
    raise ImproperlyConfigured("EMAIL_HOST is required when IMSERVER_ENV=production (password-reset mail)")
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

# --- Rate limits (contract 1.2) -------------------------------------------------------------
# "<count>/<second|minute|hour|day>" per scope, each overridable as RATE_LIMIT_<SCOPE>.
# RATE_LIMITS=off turns them all off (not the login lockout).
RATE_LIMITS_ENABLED = env("RATE_LIMITS", "on").lower() != "off"
RATE_LIMITS = {
    scope: env(f"RATE_LIMIT_{scope.upper()}", default)
    for scope, default in {
        "register": "20/hour",
        "login": "60/minute",
        "refresh": "60/minute",
        "oauth": "30/minute",
        "password_reset": "5/hour",
        "password_reset_confirm": "10/hour",
        "email_confirm": "10/hour",  # confirmation codes tried per user
        "email_confirm_resend": "5/hour",
        "search": "120/minute",
        "send": "1200/minute",
        "upload": "60/minute",
        "calls": "30/minute",
        "ice": "120/minute",  # ICE candidates relayed per call and sender
        "group_membership": "30/minute",  # invites, removals, role changes per group
        "reports": "30/hour",
        "write": "600/minute",
    }.items()
}
LOGIN_LOCKOUT_WINDOW = timedelta(minutes=15)
# Failed logins per username from one address, per username from all addresses together (higher:
# strangers cannot lock the owner out with the first one's count), and per address (contract 23).
LOGIN_LOCKOUT_PER_USERNAME = env_int("LOGIN_LOCKOUT_PER_USERNAME", 10)
LOGIN_LOCKOUT_PER_USERNAME_ALL_ADDRESSES = env_int("LOGIN_LOCKOUT_PER_USERNAME_ALL_ADDRESSES", 100)
LOGIN_LOCKOUT_PER_ADDRESS = env_int("LOGIN_LOCKOUT_PER_ADDRESS", 100)

# --- Media uploads (contract 8) ------------------------------------------------------------
# Largest upload per declared type, in bytes (413 beyond it, enforced while the upload streams in).
MEDIA_MAX_BYTES = {
    "image": env_int("MEDIA_MAX_IMAGE_BYTES", 20 * 1024 * 1024),
    "audio": env_int("MEDIA_MAX_AUDIO_BYTES", 50 * 1024 * 1024),
    "video": env_int("MEDIA_MAX_VIDEO_BYTES", 200 * 1024 * 1024),
    "file": env_int("MEDIA_MAX_FILE_BYTES", 100 * 1024 * 1024),
}
# How long the signed media URLs in responses stay valid.
MEDIA_URL_TTL = timedelta(seconds=env_int("MEDIA_URL_TTL", 24 * 3600))
# Uploads that no message or avatar has used after this long are deleted by `manage.py purge_media`.
MEDIA_ORPHAN_TTL = timedelta(hours=env_int("MEDIA_ORPHAN_HOURS", 24))
# What one user may store (contract 23), unattached uploads included; beyond it 413.
MEDIA_QUOTA_BYTES = env_int("MEDIA_QUOTA_BYTES", 2 * 1024**3)
MEDIA_THUMBNAIL_SIDE = 320  # thumbnails (images, video posters) are at most this many pixels a side
# The image budget (contract 23): no frame larger than MEDIA_IMAGE_MAX_PIXELS (a 48 MP phone photo
# fits), no animation over MEDIA_ANIMATION_MAX_PIXELS over all its frames, each at its real size;
# beyond it 400 before decoding. At most MEDIA_DECODE_CONCURRENCY images decode at once per process;
# a request waits MEDIA_DECODE_WAIT seconds for its turn, then gets 503.
MEDIA_IMAGE_MAX_PIXELS = env_int("MEDIA_IMAGE_MAX_PIXELS", 50_000_000)
# 12 Mpx: a 480x270 GIF of 90 frames; re-encoding that many pixels of noise as GIF costs 0.5 s of
# CPU. APNG frames count twice and animated WebP frames three times (media.images.ANIMATION_COST).
MEDIA_ANIMATION_MAX_PIXELS = env_int("MEDIA_ANIMATION_MAX_PIXELS", 12_000_000)
# PNG, WebP and GIF stills are re-encoded in their own format, ten to twenty times JPEG's CPU a
# pixel: at most 4096x2048 of them (8.4 Mpx: a PNG of noise costs 0.5 s of CPU), WebP stills count
# twice (media.images.STILL_COST: a 2048x2048 WebP of noise costs 0.5 s, 4096x4096 cost 3.9 s).
MEDIA_REENCODED_MAX_PIXELS = env_int("MEDIA_REENCODED_MAX_PIXELS", 4096 * 2048)
MEDIA_DECODE_CONCURRENCY = env_int("MEDIA_DECODE_CONCURRENCY", 2)
MEDIA_DECODE_WAIT = timedelta(seconds=env_int("MEDIA_DECODE_WAIT", 10))

# --- Static files and uploads ---------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True  # serve admin assets without a collectstatic step
MEDIA_ROOT = Path(env("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "/media/"
# Uploaded media and avatars: local disk (MEDIA_ROOT) by default; S3-compatible object storage
# (django-storages) with MEDIA_STORAGE=s3, required when several hosts serve the API.
MEDIA_STORAGE = env("MEDIA_STORAGE", "local")
if MEDIA_STORAGE == "local":
    _MEDIA_BACKEND = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
elif MEDIA_STORAGE == "s3":
    if not env("AWS_STORAGE_BUCKET_NAME"):
        raise ImproperlyConfigured("MEDIA_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME")
    _MEDIA_BACKEND = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env("AWS_S3_ENDPOINT_URL"),
            "region_name": env("AWS_S3_REGION_NAME"),
            "access_key": env("AWS_ACCESS_KEY_ID"),
            "secret_key": env("AWS_SECRET_ACCESS_KEY"),
            # "path" for MinIO and other S3-compatible servers without per-bucket host names.
            "addressing_style": env("AWS_S3_ADDRESSING_STYLE"),
            "signature_version": "s3v4",
            "default_acl": None,  # private objects (the bucket's default): clients get presigned URLs
            "querystring_auth": True,
            "querystring_expire": int(MEDIA_URL_TTL.total_seconds()),
        },
    }
else:
    raise ImproperlyConfigured("MEDIA_STORAGE must be 'local' or 's3'")
STORAGES = {
    "default": _MEDIA_BACKEND,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Request bodies above this (JSON, avatars in base64) are refused with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("REQUEST_MAX_BYTES", 8 * 1024 * 1024)

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Admin sessions ---------------------------------------------------------------------------
# Only the admin uses sessions: one idle for ADMIN_SESSION_IDLE_MINUTES ends (the expiry moves
# on with every request).
SESSION_COOKIE_AGE = env_int("ADMIN_SESSION_IDLE_MINUTES", 30) * 60
SESSION_SAVE_EVERY_REQUEST = True
# Two-factor login for staff (TOTP, django-otp): an account with a confirmed device logs in to the
# admin with its current code as well; with ADMIN_REQUIRE_2FA (or the security policy a superuser
# sets in the admin: moderation.models.SecurityPolicy) every staff account must enrol one
# before it can do anything else there. Wrong codes count in the login lockout (contract 23), so
# django-otp's own throttle is off; a code is accepted once (django-otp refuses a replay).
ADMIN_REQUIRE_2FA = env_bool("ADMIN_REQUIRE_2FA", False)
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", "imserver")
OTP_TOTP_THROTTLE_FACTOR = 0

# --- Security (production) ------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a one-way commitment of the whole domain; the operator opts in.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [f"https://{host}" for host in ALLOWED_HOSTS])

# Devices (contract 11): live sessions per user (a new login past it revokes the least recently
# seen), and how young a session is that needs the password to sign out others.
DEVICES_MAX_PER_USER = env_int("DEVICES_MAX_PER_USER", 50)
SESSION_FRESH_HOURS = env_int("SESSION_FRESH_HOURS", 24)

# Push notifications (contract 12), each provider off until configured. The endpoints are
# overridable so that tests talk to fake providers over the real protocols.
FCM_CREDENTIALS_FILE = env("FCM_CREDENTIALS_FILE")  # a Google service-account JSON file
FCM_PROJECT_ID = env("FCM_PROJECT_ID")  # default: the file's project_id
FCM_ENDPOINT = env("FCM_ENDPOINT", "https://fcm.googleapis.com")
APNS_KEY_FILE = env("APNS_KEY_FILE")  # the .p8 signing key
APNS_KEY_ID = env("APNS_KEY_ID")
APNS_TEAM_ID = env("APNS_TEAM_ID")
APNS_TOPIC = env("APNS_TOPIC")  # the app's bundle id; VoIP pushes use <topic>.voip
APNS_ENDPOINT = env("APNS_ENDPOINT")  # default by the registration's sandbox flag
APNS_CA_FILE = env("APNS_CA_FILE")  # an extra CA to trust (a proxy, a test server)
_apns_settings = [APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC]
if any(_apns_settings) and not all(_apns_settings):
    raise ImproperlyConfigured("APNs needs all of APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID and APNS_TOPIC")
PUSH_TIMEOUT_SECONDS = env_int("PUSH_TIMEOUT_SECONDS", 10)
# On: server processes leave pushes to `manage.py run_worker` processes; off (the embedded
# default): every server process sends them itself.
PUSH_WORKER = env_bool("PUSH_WORKER", False)

# --- Logs and error reporting -------------------------------------------------------------
# LOG_FORMAT=json: one JSON object per line (time, level, logger, message, request_id); "plain"
# by default. Every line of a request carries its id (X-Request-ID from the load balancer, else
# generated; echoed in the response).
LOG_FORMAT = env("LOG_FORMAT", "plain")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured("LOG_FORMAT must be 'plain' or 'json'")
_LOG_HANDLER = {
    "class": "logging.StreamHandler",
    "formatter": LOG_FORMAT,
    "filters": ["redact_tokens", "request_id"],
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_tokens": {"()": "imserver.logs.RedactTokens"},
        "request_id": {"()": "imserver.logs.AddRequestId"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "imserver.logs.JsonLines"},
    },
    "handlers": {"console": _LOG_HANDLER},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "httpx": {"level": "WARNING"},  # a line per push request otherwise
        # The ASGI servers' own handlers: their lines pass through the same token filter.
        "uvicorn": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO"), "propagate": False},
        "uvicorn.error": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO"), "propagate": False},
        "uvicorn.access": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO"), "propagate": False},
    },
}

# Prometheus metrics at /metrics, for callers sending "Authorization: Bearer <METRICS_TOKEN>";
# without a token /metrics is a 404. See imserver/metrics.py (PROMETHEUS_MULTIPROC_DIR).
METRICS_TOKEN = env("METRICS_TOKEN")
# The worker (manage.py run_worker) serves no HTTP; with METRICS_TOKEN set it answers /metrics on
# this address (host:port; the default stays on loopback).
METRICS_WORKER_LISTEN = env("METRICS_WORKER_LISTEN", "127.0.0.1:8002")

# Opt-in error reporting to Sentry (or a compatible service such as GlitchTip). Personal data
# (user ids, addresses, headers, bodies, local variables) is not sent unless SENTRY_SEND_PII=true.
SENTRY_DSN = env("SENTRY_DSN")
if SENTRY_DSN:
    import sentry_sdk

    from imserver.logs import redact_sentry_event

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        environment=env("SENTRY_ENVIRONMENT", "production" if PRODUCTION else "development"),
        send_default_pii=env_bool("SENTRY_SEND_PII", False),
        # Local variables hold passwords, tokens and message text: only with PII on.
        include_local_variables=env_bool("SENTRY_SEND_PII", False),
        traces_sample_rate=float(env("SENTRY_TRACES_SAMPLE_RATE", "0")),
        before_send=redact_sentry_event,
    )

APPEND_SLASH = False  # the API tolerates a trailing slash itself; never redirect a POST
