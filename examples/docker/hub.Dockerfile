# The hub and hubkit-proxy: one image, two compose services (see compose.yaml).
# Build context: the repository root (compose.yaml sets it), so the packages are installed from this checkout.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

RUN python3 -m venv /opt/hubkit
ENV PATH=/opt/hubkit/bin:$PATH \
    PYTHONUNBUFFERED=1

COPY packages/hubkit-core /src/hubkit-core
COPY packages/hubkit-proxy /src/hubkit-proxy
COPY packages/hubkit-spawn-docker /src/hubkit-spawn-docker
RUN pip install --no-cache-dir /src/hubkit-core /src/hubkit-proxy /src/hubkit-spawn-docker \
 && rm -rf /src

WORKDIR /srv/hubkit
# The hub talks to the Docker engine through the mounted socket, which is root-equivalent on the host anyway;
# the proxy service overrides the command and needs no privileges.
CMD ["hubkit", "-f", "/etc/hubkit/hubkit.toml"]
