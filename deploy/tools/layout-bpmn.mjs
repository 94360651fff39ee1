// Turns a BPMN file written as plain semantics (processes, flows, no diagram) into what Camunda
// Modeler writes: <incoming>/<outgoing> on every flow node (recomputed from the flows) and a laid-out diagram (bpmn-auto-layout).
// Usage: node deploy/tools/layout-bpmn.mjs FILE.bpmn [...]   (rewrites each file in place)
import fs from 'node:fs';
import { BpmnModdle } from 'bpmn-moddle';
import { layoutProcess } from 'bpmn-auto-layout';

import { createRequire } from 'node:module';

const camunda = createRequire(import.meta.url)('camunda-bpmn-moddle/resources/camunda.json');
const moddle = new BpmnModdle({ camunda });

function connectFlows(container) {
  for (const element of container.flowElements || []) {
    if (element.$type !== 'bpmn:SequenceFlow' && element.incoming !== undefined) {
      element.set('incoming', []);
      element.set('outgoing', []);
    }
  }
  for (const element of container.flowElements || []) {
    if (element.$type === 'bpmn:SequenceFlow') {
      const source = element.sourceRef;
      const target = element.targetRef;
      if (!source.outgoing?.includes(element)) source.get('outgoing').push(element);
      if (!target.incoming?.includes(element)) target.get('incoming').push(element);
    }
    if (element.flowElements) connectFlows(element);
  }
}

for (const file of process.argv.slice(2)) {
  const { rootElement } = await moddle.fromXML(fs.readFileSync(file, 'utf8'));
  rootElement.diagrams = [];
  for (const process of rootElement.rootElements.filter((e) => e.$type === 'bpmn:Process')) {
    connectFlows(process);
  }
  const { xml } = await moddle.toXML(rootElement, { format: true });
  fs.writeFileSync(file, await layoutProcess(xml));
  console.log(`laid out ${file}`);
}
