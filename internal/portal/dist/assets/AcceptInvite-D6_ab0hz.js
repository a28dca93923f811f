import{j as t,d as e}from"./index-BtJ4-ujf.js";function i(){return t.jsx(e,{order:2,children:"AcceptInvite"})}export{i as default};
