# syntax=docker/dockerfile:1
# One image for every role: `invoicing server`, `invoicing worker` and `invoicing migrate`.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Code is built from /src into site-packages and the sources dropped, so nothing in the
# working directory can shadow the installed packages. Data files come after: editing a
# template does not reinstall the dependencies.
COPY pyproject.toml /src/
COPY invoicing /src/invoicing
COPY server /src/server
COPY worker /src/worker
COPY cli /src/cli
COPY devtools /src/devtools
RUN pip install /src && rm -rf /src

WORKDIR /app
# Looked up under the working directory once the packages live in site-packages: the
# migrations, and the templates and static files the server renders and serves.
COPY migrations ./migrations
COPY web ./web

RUN groupadd --system --gid 10001 invoicing \
    && useradd --system --uid 10001 --gid invoicing --create-home invoicing
USER 10001:10001

EXPOSE 8000
CMD ["invoicing", "server", "--host", "0.0.0.0", "--port", "8000"]
