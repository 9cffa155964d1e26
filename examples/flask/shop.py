"""A small Flask app for berth's example and tests: routes, JSON, a form POST."""
import os

from flask import Flask, jsonify, request

app = Flask(__name__)

ITEMS = {"1": {"id": "1", "name": "teapot", "price": 18.5}, "2": {"id": "2", "name": "cup", "price": 4.0}}


@app.route("/")
def index():
    return "Welcome to the shop\n"


@app.route("/items")
def items():
    return jsonify(sorted(ITEMS.values(), key=lambda i: i["id"]))


@app.route("/items/<item_id>")
def item(item_id):
    if item_id not in ITEMS:
        return jsonify(error="no such item", id=item_id), 404
    return jsonify(ITEMS[item_id])


@app.route("/order", methods=["POST"])
def order():
    name = request.form.get("name", "")
    qty = request.form.get("qty", "1")
    if name not in {i["name"] for i in ITEMS.values()}:
        return jsonify(error="unknown item", name=name), 400
    return jsonify(ordered=name, qty=int(qty), worker=os.getpid()), 201


@app.route("/echo", methods=["POST"])
def echo():
    return jsonify(json=request.get_json(silent=True), length=request.content_length)
