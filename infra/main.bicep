// Chat Reconnect on Azure Functions Flex Consumption over Azure Table storage.
// Deploy with `azd up` or `az deployment group create` (see docs/deploy.md).
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Name of the environment (the azd environment name); it seeds the resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Region of every resource; it must offer the Flex Consumption plan.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string = resourceGroup().location

@secure()
@minLength(32)
@description('Key that signs reconnect links (at least 32 characters, e.g. `openssl rand -base64 48`). Stored in Key Vault as RECONNECT-SIGNING-KEY; changing it writes a new secret version.')
param signingKey string

@description('Version id of the RECONNECT-SIGNING-KEY secret that signed the links still outstanding after a rotation; empty when no rotation is in progress.')
param previousSigningKeyVersion string = ''

@description('Origins (scheme://host[:port]) of the portals that host the widget; the browser may call the API from these only.')
param corsAllowedOrigins array = []

@description('Organization id that pages using Microsoft\'s Omnichannel chat SDK pass as orgId (OMNICHANNEL_ORG_ID); empty turns the SDK\'s routes off. Their portal origins belong in corsAllowedOrigins.')
param omnichannelOrgId string = ''

@minLength(3)
@maxLength(63)
@description('Name of the Storage queue that receives the integration events (EVENTS_QUEUE; docs/events.md): lowercase letters, digits and single hyphens. The app\'s identity may only send to it; consumers get their own role on it.')
param eventsQueueName string = 'conversation-events'

@minLength(1)
@description('The CloudEvents `source` of every integration event (EVENTS_SOURCE), a URI reference naming this deployment.')
param eventsSource string = '/chat-reconnect'

@minValue(1)
@maxValue(10080)
@description('Minutes after which a conversation left in wrap-up is closed automatically (WRAP_UP_AUTO_CLOSE_MINUTES).')
param wrapUpAutoCloseMinutes int = 15

@minValue(0)
@maxValue(300)
@description('Seconds an instance may use widget settings it read; 0 reads them on every request (WIDGET_SETTINGS_CACHE_SECONDS).')
param widgetSettingsCacheSeconds int = 5

@minLength(1)
@description('NCRONTAB schedule (six fields, seconds first) of the timer that enforces reconnect deadlines (RECONNECT_ENFORCE_SCHEDULE).')
param enforceSchedule string = '*/30 * * * * *'

@minValue(1)
@maxValue(1000)
@description('Most instances the Flex Consumption plan may scale out to.')
param maximumInstanceCount int = 100

@allowed([
  512
  2048
  4096
])
@description('Memory of each instance, in MB.')
param instanceMemoryMB int = 2048

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
@description('Replication of the storage account that holds the tables (the product\'s data) and the deployment package. Standard_GZRS needs a region with availability zones; elsewhere use Standard_GRS.')
param storageSkuName string = 'Standard_GZRS'

@allowed([
  'default'
  'recover'
])
@description('How the Key Vault is made: `default`, or `recover` once to bring back the soft-deleted vault of an environment that was torn down with `azd down --purge` (purge protection keeps it for 90 days under the same name); see docs/deploy.md.')
param keyVaultCreateMode string = 'default'

@description('Client id of the Microsoft Entra app registration of the admin API. When set, App Service authentication validates admins\' Entra ID tokens and the admin routes require the app role `adminAppRole`; empty (the default) deploys no authentication settings.')
param adminClientId string = ''

@description('Tenant of the admin app registration; the tenant of this subscription by default.')
param adminTenantId string = tenant().tenantId

@minLength(1)
@description('Value of the app role (of the admin app registration) an admin\'s token must carry to call /api/manage/* (ADMIN_REQUIRED_ROLE); used only when adminClientId is set.')
param adminAppRole string = 'ChatReconnect.Admin'

@description('Spread the function app\'s instances over availability zones. The platform then keeps at least two always-ready instances per function group, which are billed while idle; not every Flex Consumption region has zones.')
param zoneRedundant bool = false

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

// The product's tables (shared/storage/tables.py); one array so a rename is one edit.
var tableNames = [
  'widgets'
  'conversations'
  'due'
  'customers'
  'capacity'
  'enforcer'
  'outbox'
]

// The private outbox the app stages each change's event in before the write, relayed to
// eventsQueueName by a queue-triggered function (docs/architecture.md). The Functions host
// moves a message that failed five times to `<queue>-poison`; it exists beforehand, because
// the identity may send to it but not create it.
var eventsOutboxQueueName = 'conversation-events-outbox'
var eventsPoisonQueueName = '${eventsOutboxQueueName}-poison'

var functionAppName = 'func-api-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'

// The function app's only identity: storage (host, tables, event queues), Key Vault references and App Insights.
resource apiIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-api-${resourceToken}'
  location: location
  tags: tags
}

module monitoring 'core/monitor/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
  }
}

module storage 'core/storage/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    name: 'st${resourceToken}'
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    tableNames: tableNames
    queueNames: [
      eventsQueueName
      eventsOutboxQueueName
      eventsPoisonQueueName
    ]
  }
}

module keyVault 'core/security/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    name: 'kv-${resourceToken}'
    signingKey: signingKey
    createMode: keyVaultCreateMode
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  params: {
    principalId: apiIdentity.properties.principalId
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: keyVault.outputs.name
    eventsQueueName: eventsQueueName
    eventsOutboxQueueName: eventsOutboxQueueName
    eventsPoisonQueueName: eventsPoisonQueueName
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: apiIdentity.id
    identityClientId: apiIdentity.properties.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    signingKeySecretUri: keyVault.outputs.signingKeySecretUri
    previousSigningKeyVersion: previousSigningKeyVersion
    corsAllowedOrigins: corsAllowedOrigins
    wrapUpAutoCloseMinutes: wrapUpAutoCloseMinutes
    widgetSettingsCacheSeconds: widgetSettingsCacheSeconds
    enforceSchedule: enforceSchedule
    omnichannelOrgId: omnichannelOrgId
    eventsQueueName: eventsQueueName
    eventsOutboxQueueName: eventsOutboxQueueName
    eventsSource: eventsSource
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    zoneRedundant: zoneRedundant
    adminClientId: adminClientId
    adminTenantId: adminTenantId
    adminAppRole: adminAppRole
  }
  // The app reads its deployment package, host storage and Key Vault reference with these roles.
  dependsOn: [
    rbac
  ]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_TABLES_ENDPOINT string = storage.outputs.tableEndpoint
output AZURE_QUEUES_ENDPOINT string = storage.outputs.queueEndpoint
output AZURE_EVENTS_QUEUE_NAME string = eventsQueueName
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.endpoint
output AZURE_API_IDENTITY_CLIENT_ID string = apiIdentity.properties.clientId
// The version id that RECONNECT_PREVIOUS_SIGNING_KEY_VERSION takes during a key rotation (docs/deploy.md).
output RECONNECT_SIGNING_KEY_VERSION string = keyVault.outputs.signingKeySecretVersion
