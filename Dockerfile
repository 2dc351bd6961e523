# Image of the bridge and the worker (see compose.yaml).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY avro ./avro
COPY streams ./streams
RUN pip install -e .
RUN useradd --create-home streams && mkdir /data && chown streams /data
USER streams
EXPOSE 8080 6066
CMD ["voucherify-streams", "bridge"]
