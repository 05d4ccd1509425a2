// The Flex Consumption plan and the Linux Python 3.11 function app, with every app setting
// in one literal object (tests/infra/test_infra.py compares it with shared/config.py).
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param signingKeySecretUri string
param previousSigningKeyVersion string
param corsAllowedOrigins array
param wrapUpAutoCloseMinutes int
param widgetSettingsCacheSeconds int
param enforceSchedule string
param omnichannelOrgId string
// The integration events (main.bicep; docs/events.md).
param eventsQueueName string
param eventsOutboxQueueName string
param eventsSource string
param maximumInstanceCount int
param instanceMemoryMB int
param zoneRedundant bool
// The admin app registration (main.bicep); an empty client id leaves authentication off.
param adminClientId string
param adminTenantId string
param adminAppRole string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

var tablesEndpoint = 'https://${storageAccountName}.table.${environment().suffixes.storage}'
var queuesEndpoint = 'https://${storageAccountName}.queue.${environment().suffixes.storage}'
var previousSigningKey = empty(previousSigningKeyVersion) ? '' : '@Microsoft.KeyVault(SecretUri=${signingKeySecretUri}/${previousSigningKeyVersion})'

var adminSignIn = !empty(adminClientId)

var appSettings = {
  // Host storage, identity-based: the account has no usable keys. The host derives both the
  // blob and the queue endpoint from the account name, so these three also serve the relay's
  // queue trigger on the outbox queue (connection AzureWebJobsStorage).
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // Telemetry authenticated with Microsoft Entra ID (local auth is off on the component).
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // Read by the app (shared/config.py APP_SETTINGS). TABLES_CONNECTION_STRING is left unset:
  // in Azure the app reaches Table storage with the identity below.
  TABLES_ENDPOINT: tablesEndpoint
  AZURE_CLIENT_ID: identityClientId
  RECONNECT_SIGNING_KEY: '@Microsoft.KeyVault(SecretUri=${signingKeySecretUri})'
  RECONNECT_PREVIOUS_SIGNING_KEY: previousSigningKey
  WRAP_UP_AUTO_CLOSE_MINUTES: string(wrapUpAutoCloseMinutes)
  WIDGET_SETTINGS_CACHE_SECONDS: string(widgetSettingsCacheSeconds)
  RECONNECT_ENFORCE_SCHEDULE: enforceSchedule
  // The admin routes trust App Service's forwarded principal only with this role (shared/api/admin_auth.py).
  ADMIN_REQUIRED_ROLE: adminSignIn ? adminAppRole : ''
  // Empty turns the Omnichannel chat SDK routes off (docs/omnichannel.md).
  OMNICHANNEL_ORG_ID: omnichannelOrgId
  // Integration events (docs/events.md). QUEUES_CONNECTION_STRING is left unset: in Azure the
  // app reaches the queues with the identity above, whose roles are scoped to each queue.
  EVENTS_QUEUE: eventsQueueName
  EVENTS_SOURCE: eventsSource
  EVENTS_OUTBOX_QUEUE: eventsOutboxQueueName
  QUEUES_ENDPOINT: queuesEndpoint
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      // The platform answers preflights for these origins and allows the headers they ask
      // for, Microsoft's chat SDK's included (AuthenticatedUserToken, Ms-Oc-User-Agent, ...).
      cors: {
        allowedOrigins: corsAllowedOrigins
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }

  resource settings 'config' = {
    name: 'appsettings'
    properties: appSettings
  }

  // Deployments authenticate with Microsoft Entra ID; no FTP or basic-auth publishing.
  resource ftpPublishing 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: {
      allow: false
    }
  }

  resource scmPublishing 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: {
      allow: false
    }
  }
}

// Microsoft Entra ID in front of the admin routes, only when an admin app registration is given.
module adminAuthentication 'admin-auth.bicep' = if (adminSignIn) {
  name: 'admin-auth'
  params: {
    functionAppName: functionApp.name
    clientId: adminClientId
    tenantId: adminTenantId
  }
}

output name string = functionApp.name
output uri string = 'https://${functionApp.properties.defaultHostName}'
