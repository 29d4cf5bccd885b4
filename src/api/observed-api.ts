// ThawApi with every invocation through the HTTP API reported to observers (metrics, the recent
// invocations the dashboard shows), so neither the routes nor the platform know about them.

import type { InvokeRequest, InvokeResult, ThawApi } from '../platform/types.js';

export interface InvocationObserver {
  invocationOk(r: InvokeResult): void;
  invocationFailed(req: InvokeRequest, err: unknown): void;
}

export function observeInvocations(api: ThawApi, observers: readonly InvocationObserver[]): ThawApi {
  const invoke = async (req: InvokeRequest): Promise<InvokeResult> => {
    let r: InvokeResult;
    try {
      r = await api.invoke(req);
    } catch (err) {
      for (const o of observers) o.invocationFailed(req, err);
      throw err;
    }
    for (const o of observers) o.invocationOk(r);
    return r;
  };
  return new Proxy(api, { get: (target, prop, receiver) => (prop === 'invoke' ? invoke : Reflect.get(target, prop, receiver)) });
}
