// Tests of the python runtime's deploy side: UTF-8, syntax (checked with Pyodide) and handler presence.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FunctionParams } from '../../core/function-spec.js';
import { createPythonDeployer, definesHandler, pythonDeployer } from './deploy.js';

const fn: FunctionParams = Object.freeze({
  name: 'deploy-test',
  runtime: 'python',
  artefactPath: '/nonexistent/handler.py',
  memoryMiB: 128,
  handler: 'handler',
  timeoutMs: 1000,
  initTimeoutMs: 1000,
  maxInputBytes: 1024,
  maxOutputBytes: 1024,
  description: '',
});
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('pythonDeployer', () => {
  it('deploy() accepts a valid source and returns handler.py', async () => {
    const out = await pythonDeployer.deploy(fn, enc('import json\n\ndef handler(event, context):\n    return event\n'));
    assert.equal(out.fileName, 'handler.py');
    assert.equal(new TextDecoder().decode(out.bytes).startsWith('import json'), true);
    assert.equal(out.facts.syntaxChecked, true);
  });

  it('deploy() rejects a syntax error with THAW_SOURCE_INVALID naming the line', async () => {
    await assert.rejects(pythonDeployer.deploy(fn, enc('x = 1\ndef handler(event, context)\n    return 1\n')), (err: unknown) => {
      assert.equal((err as { code?: string }).code, 'THAW_SOURCE_INVALID');
      assert.match((err as Error).message, /line 2/);
      return true;
    });
  });

  it('deploy() rejects bytes that are not UTF-8 with THAW_SOURCE_INVALID', async () => {
    await assert.rejects(pythonDeployer.deploy(fn, new Uint8Array([0x64, 0x65, 0x66, 0xff, 0xfe])), { code: 'THAW_SOURCE_INVALID' });
  });

  it('deploy() rejects a source without a top-level def of the handler with THAW_HANDLER_MISSING', async () => {
    await assert.rejects(pythonDeployer.deploy(fn, enc('class A:\n    def handler(self):\n        pass\n')), { code: 'THAW_HANDLER_MISSING' });
    await assert.rejects(pythonDeployer.deploy({ ...fn, handler: 'main' }, enc('def handler(e, c):\n    return 1\n')), {
      code: 'THAW_HANDLER_MISSING',
    });
  });

  it('createPythonDeployer({ checkSyntax: false }) skips the syntax check but still checks the handler', async () => {
    const lax = createPythonDeployer({ checkSyntax: false });
    const out = await lax.deploy(fn, enc('def handler(:\n'));
    assert.equal(out.facts.syntaxChecked, false);
    await assert.rejects(lax.deploy(fn, enc('x = (\n')), { code: 'THAW_HANDLER_MISSING' });
  });
});

describe('definesHandler()', () => {
  it('definesHandler() finds only a top-level def with that exact name', () => {
    assert.equal(definesHandler('def handler(e, c):\n  pass', 'handler'), true);
    assert.equal(definesHandler('x=1\ndef  handler (e, c):\n  pass', 'handler'), true);
    assert.equal(definesHandler('  def handler(e, c):\n  pass', 'handler'), false);
    assert.equal(definesHandler('def handler2(e, c):\n  pass', 'handler'), false);
  });
});
