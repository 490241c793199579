# MLflow tracking server with the PostgreSQL driver and the S3 client it needs.
# Versions match requirements.lock so clients and server speak the same API.
FROM python:3.11-slim
RUN pip install --no-cache-dir "mlflow==3.17.2" "psycopg2-binary>=2.9" "boto3==1.43.117"
EXPOSE 5000
ENTRYPOINT ["mlflow"]
