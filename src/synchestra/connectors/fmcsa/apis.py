"""The FMCSA APIs a source may name without configuring: qcmobile, datahub, saferweb."""

from __future__ import annotations

from synchestra.config import ApiConfig, AuthConfig
from synchestra.core.durations import parse_rate

# Conservative default limits, well under what each service tolerates, so that
# an unconfigured API is never hammered: QCMobile and DataHub 10 requests/s
# with 4 in flight, SaferWebAPI (a paid, metered service) 5/s with 2 in flight.
DEFAULT_APIS: dict[str, ApiConfig] = {
    api.name: api
    for api in (
        ApiConfig(
            name="qcmobile",
            base_url="https://mobile.fmcsa.dot.gov",
            rate=parse_rate("10/s"),
            concurrency=4,
            auth=AuthConfig(env="FMCSA_WEBKEY", query="webKey", required=True),
        ),
        ApiConfig(
            name="datahub",
            base_url="https://datahub.transportation.gov",
            rate=parse_rate("10/s"),
            concurrency=4,
            auth=AuthConfig(env="SOCRATA_APP_TOKEN", header="X-App-Token", required=False),
        ),
        ApiConfig(
            name="saferweb",
            base_url="https://saferwebapi.com",
            rate=parse_rate("5/s"),
            concurrency=2,
            auth=AuthConfig(env="SAFERWEB_API_KEY", header="x-api-key", required=True),
        ),
    )
}
