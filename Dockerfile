# rl-commons: one image for the stream workers, the init job, the dashboard and the demo proxy.
#   docker build -t rl-commons .
#   docker run --rm rl-commons --help
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY policy_store ./policy_store
COPY producers ./producers
COPY stream_app ./stream_app
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels '.[plot]'

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && useradd --create-home --uid 10001 rlc
USER rlc
WORKDIR /home/rlc
# owned by rlc so that a named volume mounted here is writable
RUN mkdir -p /home/rlc/demo-output
# Faust worker web server (metrics, health) and the dashboard
EXPOSE 6066 8090
ENTRYPOINT ["rl-commons"]
CMD ["--help"]
