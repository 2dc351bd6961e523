# Image of the bridge and the worker (see compose.yaml).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# A regular (non-editable) install: the schemas and the local broker's files are package data,
# so nothing of the source tree is needed at run time and it is removed again.
COPY pyproject.toml README.md /src/
COPY streams /src/streams
RUN pip install /src && rm -rf /src
RUN useradd --create-home streams && mkdir /data && chown streams /data
USER streams
WORKDIR /home/streams
EXPOSE 8080 6066
CMD ["voucherify-streams", "bridge"]
