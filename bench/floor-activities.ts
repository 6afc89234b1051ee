/** The floor workflow's four activities: they do nothing (bench/floor-workflow.ts). */
export function createFloorActivities() {
  const noop = async (userId: string): Promise<string> => userId;
  return { noop1: noop, noop2: noop, noop3: noop, noop4: noop };
}

export type FloorActivities = ReturnType<typeof createFloorActivities>;
