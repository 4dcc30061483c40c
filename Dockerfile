# graft serve in a container: one trained run, mounted read-only at /srv/run, served on port
# 8000 with the CPU build of PyTorch and ONNX Runtime (a run with a current `graft export`
# serves through it: --engine auto).
#
# It listens on 0.0.0.0, so every request but /health needs a token (Authorization: Bearer
# TOKEN). Give it one through the environment (or mount a file and pass --token-file FILE);
# without either, a token is generated into /home/graft/.graft/serve-token in the container.
#
#   docker build -t graft-serve .
#   export GRAFT_SERVE_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')
#   docker run -p 8000:8000 -e GRAFT_SERVE_TOKEN -v "$PWD/runs/flowers:/srv/run:ro" graft-serve
#   curl -H "Authorization: Bearer $GRAFT_SERVE_TOKEN" -F file=@photo.jpg localhost:8000/predict
#   docker run -p 8000:8000 -e GRAFT_SERVE_TOKEN -v "$PWD/runs/flowers:/srv/run:ro" \
#       graft-serve --workers 4
#   docker stop -t 40 CONTAINER    # answers the accepted requests first (--timeout + 5 s)
#
# Options after the image name go to `graft serve` (--engine, --workers, --max-batch,
# --queue-limit, --timeout, --top-k, --token-file; --no-auth only behind a proxy that checks).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

# libsndfile reads audio uploads; the CPU wheels of torch keep the image a fraction of the CUDA
# build's size.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch torchvision torchaudio

WORKDIR /opt/graft
COPY pyproject.toml README.md ./
COPY graft ./graft
RUN pip install ".[serve,export]"

RUN useradd --create-home --uid 10001 graft
USER graft
VOLUME ["/srv/run"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["graft", "serve", "/srv/run", "--host", "0.0.0.0", "--port", "8000"]
CMD []
