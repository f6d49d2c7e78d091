"""The FastAPI app of examples/fastapi/Dockerfile."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello() -> dict[str, str]:
    return {"message": "Hello from FastAPI on prefork"}
