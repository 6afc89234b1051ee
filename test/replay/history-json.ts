/**
 * History ⇄ proto3 JSON for the replay fixtures: the SDK's historyToJSON / historyFromJSON
 * (@temporalio/common/lib/proto-utils), with a fallback for installs where they cannot work.
 *
 * Why the fallback: @grpc/proto-loader needs protobufjs 7, so npm hoists protobufjs 7 and gives
 * @temporalio/common, /proto and /worker each their own nested copy of protobufjs 8. The SDK's
 * proto-utils then pairs protojson from common's copy with message types from proto's copy and
 * fails its `instanceof Type` check ("type must be a Type"). The fallback runs the same protojson
 * conversion with the protobufjs copy that @temporalio/proto itself resolves, so it produces the
 * same JSON the SDK would.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as sdk from '@temporalio/common/lib/proto-utils';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

type History = proto.temporal.api.history.v1.IHistory;

interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
}

let fallback: { protojson: ProtoJson; historyType: unknown } | undefined;

function local() {
  if (!fallback) {
    // Plain CommonJS require (not an ESM namespace wrapper): the module object the SDK itself patches.
    const load = createRequire(__filename);
    const protoDir = dirname(load.resolve('@temporalio/proto/package.json'));
    const protojson = load(load.resolve('protobufjs/ext/protojson', { paths: [protoDir] })) as ProtoJson;
    const root = patchProtobufRoot(load('@temporalio/proto') as Record<string, unknown>) as unknown as {
      lookupType(name: string): unknown;
    };
    fallback = { protojson, historyType: root.lookupType('temporal.api.history.v1.History') };
  }
  return fallback;
}

const isTypeMismatch = (error: unknown) => error instanceof Error && /type must be a Type/.test(error.message);

export function historyToJSON(history: proto.temporal.api.history.v1.IHistory): string {
  try {
    return sdk.historyToJSON(history);
  } catch (error) {
    if (!isTypeMismatch(error)) throw error;
    const { protojson, historyType } = local();
    const message = proto.temporal.api.history.v1.History.fromObject(history as Record<string, unknown>);
    return JSON.stringify(protojson.toJson(historyType, message), null, 2);
  }
}

export function historyFromJSON(json: unknown): History {
  try {
    return sdk.historyFromJSON(json);
  } catch (error) {
    if (!isTypeMismatch(error)) throw error;
    const { protojson, historyType } = local();
    const loaded = protojson.fromJson(historyType, json, { ignoreUnknownFields: true });
    if (!loaded) throw new TypeError('Invalid history');
    return loaded as History;
  }
}
