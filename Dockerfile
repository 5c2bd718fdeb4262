# scopebench: the harness (`bench`), both target apps and the scenario locustfiles in one image.
# Used by docker-compose.yml for every service but PostgreSQL. Build: docker build -t scopebench:local .
# No secret is baked in: the database password comes from the environment at run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# 1. Dependencies only, read from pyproject.toml, so a code or README change does not download them again.
#    (Not a `pip install .` of empty packages: pyproject.toml lists every package folder, which must exist.)
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# 2. The project itself: `pip install .` puts bench and target_apps in site-packages, and the scenarios as
#    bench/scenarios; bench and target_apps are removed afterwards so there is exactly one copy of the code.
# 3. The scenarios (locustfiles + catalog.toml) also stay at /app/scenarios: Locust in docker-compose.yml
#    uses -f /app/scenarios/<scenario>.py, and BENCH_SCENARIOS points the harness at the same copy.
COPY README.md ./
COPY bench/ bench/
COPY target_apps/ target_apps/
COPY scenarios/ /app/scenarios/
RUN pip install --no-deps . \
    && rm -rf bench target_apps build ./*.egg-info

# Run folders of `bench run` (docker-compose.yml bind-mounts ./results here).
RUN groupadd --gid 10001 bench \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/bench --shell /usr/sbin/nologin bench \
    && mkdir -p /app/results \
    && chown bench:bench /app/results
ENV BENCH_SCENARIOS=/app/scenarios \
    BENCH_RESULTS=/app/results

USER bench

# The target apps listen on 8000 in docker-compose.yml, the Locust web UI on 8089.
EXPOSE 8000 8089
CMD ["bench", "--help"]
