// Cross-check of tarsdock's Tars codec against @tars/stream, the Tars project's own JS codec.
// stdin: JSON [{schema, value, hex}, ...] written by tests/test_tarsproto_npm.py.
// stdout: JSON [{decoded, hex, error}, ...]: `decoded` is @tars/stream's reading of `hex` (tarsdock's
// encoding) in the plain form below, `hex` is @tars/stream's encoding of `value`.
// Plain form: int64 as a decimal string, bytes as hex, a map as [[k, v], ...], a struct as the
// array of its field values in tag order.
"use strict";
const Tars = require("@tars/stream");

const SIMPLE = {
    int8: Tars.Int8, int16: Tars.Int16, int32: Tars.Int32, int64: Tars.Int64, bool: Tars.Boolean,
    uint8: Tars.UInt8, uint16: Tars.UInt16, uint32: Tars.UInt32, float: Tars.Float,
    double: Tars.Double, string: Tars.String, bytes: Tars.BinBuffer,
};

// int64 items travel as decimal strings (bValue), so no precision is lost above 2^53
const wide = (schema) => (schema === "int64" ? 1 : 0);

// A struct type for a schema {"struct": [[tag, schema], ...]}, shaped like tars2node's output.
function structProto(members) {
    const Struct = function () { this.v = []; };
    Struct._write = (os, tag, value) => os.writeStruct(tag, value);
    Struct._read = (is, tag, def) => is.readStruct(tag, true, def);
    Struct._readFrom = (is) => {
        const s = new Struct();
        for (const [tag, schema] of members) {
            s.v.push(read(is, tag, schema));
        }
        return s;
    };
    Struct.prototype._writeTo = function (os) {
        members.forEach(([tag, schema], i) => write(os, tag, schema, this.v[i]));
    };
    return Struct;
}

function proto(schema) {
    if (typeof schema === "string") return SIMPLE[schema];
    if (schema.list) return Tars.List(proto(schema.list), wide(schema.list));
    if (schema.map) return Tars.Map(proto(schema.map[0]), proto(schema.map[1]), 0, wide(schema.map[1]));
    return structProto(schema.struct);
}

// plain value -> @tars/stream value
function toTars(schema, value) {
    if (schema === "bytes") return new Tars.BinBuffer(Buffer.from(value, "hex"));
    if (typeof schema === "string") return value;
    if (schema.list) {
        const list = proto(schema);
        value.forEach((item) => list.push(toTars(schema.list, item)));
        return list;
    }
    if (schema.map) {
        const map = proto(schema);
        value.forEach(([k, v]) => map.insert(k, toTars(schema.map[1], v)));
        return map;
    }
    const s = new (proto(schema))();
    schema.struct.forEach(([, member], i) => s.v.push(toTars(member, value[i])));
    return s;
}

// @tars/stream value -> plain value
function toPlain(schema, value) {
    if (schema === "bytes") return value.toNodeBuffer().toString("hex");
    if (schema === "int64") return String(value);
    if (typeof schema === "string") return value;
    if (schema.list) return value.value.map((item) => toPlain(schema.list, item));
    if (schema.map) {
        const pairs = [];
        value.forEach((k, v) => { pairs.push([k, toPlain(schema.map[1], v)]); });
        return pairs;
    }
    return schema.struct.map(([, member], i) => toPlain(member, value.v[i]));
}

// value: an @tars/stream value (toTars)
function write(os, tag, schema, value) {
    if (schema === "int64") return os.writeInt64(tag, value, true);
    if (schema === "bytes") return os.writeBytes(tag, value);
    return proto(schema)._write(os, tag, value);
}

function read(is, tag, schema) {
    if (schema === "int64") return is.readInt64(tag, true, 0, true);
    if (schema === "bytes") return is.readBytes(tag, true, Tars.BinBuffer);
    const p = proto(schema);
    return p._read(is, tag, p);
}

function check(one) {
    const result = { decoded: null, hex: null, error: null };
    try {
        const is = new Tars.TarsInputStream(new Tars.BinBuffer(Buffer.from(one.hex, "hex")));
        result.decoded = toPlain(one.schema, read(is, 0, one.schema));
        const os = new Tars.TarsOutputStream();
        write(os, 0, one.schema, toTars(one.schema, one.value));
        result.hex = os.getBinBuffer().toNodeBuffer().toString("hex");
    } catch (e) {
        result.error = String(e && (e.message || e));
    }
    return result;
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
    process.stdout.write(JSON.stringify(JSON.parse(input).map(check)));
});
