-- Argo CD health check for azlog LogSources (argocd-cm: resource.customizations.health.azlog.io_LogSource).
hs = {status = "Progressing", message = "waiting for the azlog operator"}
if obj.status == nil or obj.status.conditions == nil then return hs end
if obj.status.observedGeneration ~= obj.metadata.generation then return hs end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Stalled" and c.status == "True" then
    return {status = "Degraded", message = c.message}
  end
  if c.type == "Degraded" and c.status == "True" then
    return {status = "Degraded", message = c.message}
  end
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    if c.status == "True" then return {status = "Healthy", message = c.message} end
    return {status = "Progressing", message = c.message}
  end
end
return hs
