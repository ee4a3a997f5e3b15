// Node side of the k8s checks (driven by the Python tests in this folder):
//
//   node k8s_tool.mjs yaml2json FILE...          YAML streams -> JSON [{file, index, doc}] on stdout
//   node k8s_tool.mjs validate OBJECTS.json      kubernetes-models validate() of every object
//   node k8s_tool.mjs k8s-ts OBJECTS.json OUT.ts every object `satisfies` its model's interface
//   node k8s_tool.mjs dash-ts OUT.ts DASH.json... every dashboard `satisfies` @grafana/schema
//
// kubernetes-models' validate() catches wrong types and missing required
// fields but ignores unknown ones; the generated TypeScript catches those:
// an object literal checked with `satisfies` may not carry a property its
// type does not declare (excess property check), at any depth.
import fs from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";

function die(msg) {
  process.stderr.write(msg + "\n");
  process.exit(1);
}

// apiVersion "apps/v1" -> "apps/v1", "v1" -> "v1" (the core group's folder).
function modelPath(apiVersion, kind) {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

function yaml2json(files) {
  const out = [];
  for (const file of files) {
    const text = fs.readFileSync(file, "utf8");
    const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
    docs.forEach((d, index) => {
      if (d.errors && d.errors.length) {
        die(`${file}: document ${index}: ${d.errors.map((e) => e.message).join("; ")}`);
      }
      const doc = d.toJS({ maxAliasCount: 100 });
      if (doc !== null && doc !== undefined) out.push({ file, index, doc });
    });
  }
  process.stdout.write(JSON.stringify(out));
}

async function validate(objectsFile) {
  const items = JSON.parse(fs.readFileSync(objectsFile, "utf8"));
  const failures = [];
  let checked = 0;
  for (const { doc } of items) {
    const where = `${doc.kind}/${doc.metadata && doc.metadata.name}`;
    let mod;
    try {
      mod = await import(modelPath(doc.apiVersion, doc.kind));
    } catch (e) {
      failures.push(`${where}: no model for ${doc.apiVersion} ${doc.kind}`);
      continue;
    }
    const Model = mod[doc.kind];
    try {
      new Model(doc).validate();
      checked++;
    } catch (e) {
      const details = e.errors ? JSON.stringify(e.errors) : String(e);
      failures.push(`${where}: ${e.message} ${details}`);
    }
  }
  if (failures.length) die(failures.join("\n"));
  process.stdout.write(`validated ${checked} objects\n`);
}

function k8sTs(objectsFile, outFile) {
  const items = JSON.parse(fs.readFileSync(objectsFile, "utf8"));
  const imports = new Map();
  const lines = [];
  items.forEach(({ doc }, i) => {
    const type = `T_${doc.apiVersion.replace(/[^A-Za-z0-9]/g, "_")}_${doc.kind}`;
    imports.set(type, `import type { I${doc.kind} as ${type} } from "${modelPath(doc.apiVersion, doc.kind)}";`);
    lines.push(`// ${doc.kind}/${doc.metadata && doc.metadata.name}`);
    lines.push(`export const o${i} = ${JSON.stringify(doc, null, 2)} satisfies ${type};`);
  });
  fs.writeFileSync(outFile, [...imports.values(), "", ...lines, ""].join("\n"));
}

// Panel types whose options / custom field config @grafana/schema types.
const PANEL_CFG = {
  timeseries: "timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen",
  stat: "stat/panelcfg/x/StatPanelCfg_types.gen",
  table: "table/panelcfg/x/TablePanelCfg_types.gen",
  logs: "logs/panelcfg/x/LogsPanelCfg_types.gen",
};
const RAW = "@grafana/schema/dist/esm/raw/composable";

function dashTs(outFile, dashboards) {
  const lines = [
    `import type { Dashboard } from "@grafana/schema";`,
    `import type { LokiDataQuery } from "${RAW}/loki/dataquery/x/LokiDataQuery_types.gen";`,
  ];
  for (const [type, mod] of Object.entries(PANEL_CFG)) {
    lines.push(`import type { Options as ${type}Options } from "${RAW}/${mod}";`);
  }
  lines.push(`import type { FieldConfig as timeseriesFieldConfig } from "${RAW}/${PANEL_CFG.timeseries}";`);
  lines.push(`import type { FieldConfig as tableFieldConfig } from "${RAW}/${PANEL_CFG.table}";`);
  // Dashboards are JSON: where the schema has a TypeScript string enum, JSON
  // holds the enum's value. Json<T> turns every enum into the union of its
  // values and keeps the rest of T (optional and excess-property rules too).
  lines.push(
    "type Json<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T :",
    "  T extends Array<infer U> ? Array<Json<U>> : T extends object ? { [K in keyof T]: Json<T[K]> } : T;",
    "",
  );
  dashboards.forEach((file, d) => {
    const dash = JSON.parse(fs.readFileSync(file, "utf8"));
    lines.push(`// ${path.basename(file)}`);
    lines.push(`export const d${d} = ${JSON.stringify(dash, null, 2)} satisfies Json<Dashboard>;`);
    (dash.panels || []).forEach((p, i) => {
      const name = `d${d}p${i}`;
      if (p.options !== undefined) {
        if (!PANEL_CFG[p.type]) {
          lines.push(`// panel ${p.title}: type ${p.type} has no typed options here`);
        } else {
          // Exact: no option the panel does not know.
          lines.push(`export const ${name}o = ${JSON.stringify(p.options)} satisfies Json<Partial<${p.type}Options>>;`);
        }
      }
      const custom = p.fieldConfig && p.fieldConfig.defaults && p.fieldConfig.defaults.custom;
      if (custom !== undefined) {
        if (p.type !== "timeseries" && p.type !== "table") {
          lines.push(`// panel ${p.title}: type ${p.type} has no typed custom field config here`);
        } else {
          lines.push(`export const ${name}c = ${JSON.stringify(custom)} satisfies Json<Partial<${p.type}FieldConfig>>;`);
        }
      }
      (p.targets || []).forEach((t, j) => {
        const ds = t.datasource || p.datasource || {};
        if (ds.type === "loki") {
          lines.push(`export const ${name}t${j} = ${JSON.stringify(t)} satisfies Json<LokiDataQuery>;`);
        }
      });
    });
  });
  fs.writeFileSync(outFile, lines.join("\n") + "\n");
}

const [cmd, ...args] = process.argv.slice(2);
switch (cmd) {
  case "yaml2json":
    yaml2json(args);
    break;
  case "validate":
    await validate(args[0]);
    break;
  case "k8s-ts":
    k8sTs(args[0], args[1]);
    break;
  case "dash-ts":
    dashTs(args[0], args.slice(1));
    break;
  default:
    die("usage: k8s_tool.mjs yaml2json|validate|k8s-ts|dash-ts ...");
}
