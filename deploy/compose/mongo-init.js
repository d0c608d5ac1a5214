// Run once by the mongo-init job of compose.yaml (mongosh --host mongo-1).
// Initiates the replica set rs0 if it is not yet, then waits until a member
// is primary, so that the Tern nodes, which start after this job completes,
// find a writable set. Running it again is harmless: an initiated set is
// left as it is.

const members = [
  // mongo-1 is preferred as primary only so that logs read predictably;
  // any member may take over.
  { _id: 0, host: "mongo-1:27017", priority: 2 },
  { _id: 1, host: "mongo-2:27017", priority: 1 },
  { _id: 2, host: "mongo-3:27017", priority: 1 },
];

let initiated = true;
try {
  rs.status();
} catch (e) {
  if (e.codeName !== "NotYetInitialized") {
    throw e;
  }
  initiated = false;
}
if (!initiated) {
  print("initiating replica set rs0");
  printjson(rs.initiate({ _id: "rs0", members: members }));
}

for (let i = 0; i < 120; i++) {
  try {
    const primary = rs.status().members.find((m) => m.stateStr === "PRIMARY");
    if (primary) {
      print("rs0 primary: " + primary.name);
      quit(0);
    }
  } catch (e) {
    print("waiting for rs0: " + e.message);
  }
  sleep(1000);
}
print("rs0 has no primary after 120s");
quit(1);
