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

# 1. Dependencies only, from pyproject.toml with empty packages and an empty README (the project metadata
#    needs the file), so a code or README change does not download them again.
COPY pyproject.toml ./
RUN mkdir bench target_apps \
    && touch README.md bench/__init__.py target_apps/__init__.py \
    && pip install . \
    && pip uninstall -y scopebench \
    && rm -rf README.md bench target_apps build ./*.egg-info

# 2. The project itself: `pip install .` puts bench and target_apps in site-packages; the sources are
#    removed afterwards so there is exactly one copy of the code.
COPY README.md ./
COPY bench/ bench/
COPY target_apps/ target_apps/
RUN pip install --no-deps . \
    && rm -rf bench target_apps build ./*.egg-info

# 3. The scenarios: locustfiles + catalog.toml. bench.catalog.scenarios_dir() looks next to the installed
#    package (site-packages), so BENCH_SCENARIOS points it here; Locust in docker-compose.yml uses
#    -f /app/scenarios/<scenario>.py.
COPY scenarios/ /app/scenarios/

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
