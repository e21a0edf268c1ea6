# A single-user image: JupyterLab + hubkit-singleuser, running as jovyan (uid 1000) with its home at
# /home/jovyan (the spawner mounts each user's named volume there).
# Build context: the repository root:
#   docker build -t hubkit-singleuser:latest -f examples/docker/singleuser.Dockerfile .
# Any Jupyter Docker Stacks image works too, unchanged: set [spawner.docker] image = "quay.io/jupyter/scipy-notebook"
# with command = "image" (its start script runs jupyterhub-singleuser when the hub's variables are set).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8

COPY packages/hubkit-singleuser /src/hubkit-singleuser
RUN pip install --no-cache-dir "jupyterlab>=4" /src/hubkit-singleuser \
 && rm -rf /src

RUN (getent group 1000 || groupadd -g 1000 jovyan) \
 && (getent passwd 1000 || useradd -m -u 1000 -g 1000 -s /bin/bash jovyan)
USER 1000:1000
ENV HOME=/home/jovyan
WORKDIR /home/jovyan
EXPOSE 8888
# The hub passes everything else (port, URL prefix, tokens) in JUPYTERHUB_* variables.
CMD ["hubkit-singleuser"]
